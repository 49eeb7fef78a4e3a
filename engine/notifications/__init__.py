"""Status notifications (seed 000): transaction lists, subscriptions, durable delivery."""
