"""Settings (pydantic-settings) and the milestone config loader/validator."""
