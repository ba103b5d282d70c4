"""Output folders: atomic writes (``atomic``), the claim and lock of a folder a command writes
(``claim``), the training-run folder's layout (``layout``) and the records that say what made a
folder (``records``), and where artent's cache is. Nothing here imports a model, a framework or any
other part of artent.
"""
