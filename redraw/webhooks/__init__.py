"""Webhooks (Standard Webhooks v1): one signed message per task end, sent by the sweep.

- ``guard``: the SSRF rules (https only, every resolved address public) and the allowed hosts;
- ``signing``: the secret's format and the ``webhook-signature`` (HMAC-SHA256, stdlib only);
- ``sender``: one POST over a connection pinned to the address that was checked;
- ``outbox``: the messages in the state bucket, one object each, and their retry schedule.

Nothing here is imported unless a webhook is configured or named by a request.
"""
