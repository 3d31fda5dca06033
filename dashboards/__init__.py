"""FinPulse analyst dashboard: Streamlit pages (``app.py``, ``pages/``) over a pure data module (``data.py``)."""
