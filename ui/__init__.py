"""The Streamlit side of the app: the frame every page draws, shared cached state, widget
state that survives navigation, and plain-text display helpers. Model maths lives in
``recsys``; page layouts live in ``pages/``."""
