"""The notifier: alerting webhooks. Fans change events out to one queue per matching hook (`stage`), delivers each
queue signed, in order per incident, with retries and dead letters (`deliver`)."""
