"""Configuration: ``MEETINGS_CDC_*`` variables and the TOML file, validated once at start-up.

- ``settings``: ``ApiSettings``, ``KafkaSettings``, ``Settings`` and ``load_settings``;
- ``problems``: operator mistakes found before any setting is used (unknown names with the
  closest valid one, placeholder secrets), and pydantic's errors as ``VARIABLE: problem``.
"""
