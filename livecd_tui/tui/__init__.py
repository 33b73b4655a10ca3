"""The Textual front end: a menuconfig-like profile editor and a build screen.

Only this package imports Textual; everything it shows comes from the core modules
(options, profile, engine, stages, checks), which the headless CLI uses too.
"""
