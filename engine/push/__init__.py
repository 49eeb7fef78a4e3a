"""Push notifications (seed 002): FCM credentials, the FCM sender, CALLBACK_SETTINGS, EWT rules."""
