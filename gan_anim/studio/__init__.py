"""``gan-anim studio``: a local page to edit an expression with sliders, see it live and export
what ``gan-anim animate`` makes (session.py: state and actions; app.py: the page; server.py:
serving it)."""
