"""Local stand-ins for the AI providers faktry calls (OpenAI, fal.ai, Black Forest Labs).

Each stand-in is a small Flask app served on 127.0.0.1 that speaks the provider's real protocol,
so the real SDKs (``openai``, ``fal_client``) and plain ``requests`` talk to it unchanged. See
``fixtures.py`` for the pytest fixtures and ``test_standins.py`` for each protocol exercised
with the real client.
"""
