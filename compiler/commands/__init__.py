"""Commands of the PyTorch backend (``compile``, ``train``, ``search``, ``export``).

Same protocol as ``spacelang.commands``: each module exposes ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int`` and imports torch only inside ``run``.
"""
