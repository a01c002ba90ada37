"""Buying credits with Stripe."""
