"""The live trading engine process: wiring (``engine``), kill flags, the command handler and the broker adapter.

``main.py`` is the entry point; everything here runs on the engine's single dispatcher thread unless a module
says otherwise.
"""
