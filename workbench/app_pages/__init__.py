"""The app's pages (Streamlit scripts run by ``app.py``'s ``st.navigation``) and their shared UI helpers.

Pages only render: the numbers come from plain functions in ``workbench`` (overview, preview, rounds,
simulations, labelling, strategy_form) that are tested without Streamlit.
"""
