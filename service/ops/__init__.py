"""Operations without HTTP routes of their own: metrics, JSON logs, the OpenAPI
document, the gunicorn runner."""
