"""Push notifications (seed 002): FCM credentials, the FCM sender, localized texts and the rules
(EWT-driven CALLBACK_UPCOMING and the rest) of the push service, which follows callbacks on the
callback bus and enqueues through the Outbox port (``engine.outbound``)."""
