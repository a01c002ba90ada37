"""``/v1/billing``: Stripe Checkout for credit packs, and Stripe's webhook."""
