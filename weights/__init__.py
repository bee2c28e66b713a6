"""The shipped generator weights (``*.pt``), installed as package data ``gan_anim.weights``.

pyproject.toml maps this package onto the top-level ``weights/`` folder of the checkout,
so a wheel or ``pip install .`` carries the default model; ``animate.find_weights``
looks here.
"""
