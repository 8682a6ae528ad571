"""Run an unmodified script of the book's repository on fastnn.

Usage::

    cd deep-learning-from-scratch/ch06
    python -m fastnn.book batch_norm_test.py [script args ...]

The script runs as ``__main__`` (``sys.argv`` is the script and its arguments, its directory is
first on ``sys.path``, as with ``python SCRIPT.py``), except that the book's packages are served
by fastnn: ``common`` (``common.layers``, ``common.optimizer``, ``common.multi_layer_net``,
``common.multi_layer_net_extend``, ``common.trainer``, ``common.functions``,
``common.gradient``, ``common.util``) and ``dataset`` (``dataset.mnist``, reading
``$FASTNN_DATA_DIR``). The script's own ``sys.path.append(os.pardir)`` is harmless: the aliases
are registered in ``sys.modules`` first. Local modules next to the script (e.g. ch05's
``two_layer_net.py``) are the book's own files, which import ``common.*`` and so run on fastnn.

:func:`install` does the aliasing in the current interpreter (e.g. in a notebook) and
:func:`uninstall` removes it.
"""
import importlib
import os
import runpy
import sys
import types

# book module name -> fastnn module
ALIASES = {
    "common.functions": "fastnn.functions",
    "common.gradient": "fastnn.gradient",
    "common.layers": "fastnn.layers",
    "common.optimizer": "fastnn.optimizer",
    "common.util": "fastnn.util",
    "common.multi_layer_net": "fastnn.multi_layer_net",
    "common.multi_layer_net_extend": "fastnn.multi_layer_net_extend",
    "common.trainer": "fastnn.trainer",
    "dataset": "fastnn.dataset",
    "dataset.mnist": "fastnn.dataset.mnist",
}

_installed = {}


def install():
    """Register ``common``, ``common.*``, ``dataset`` and ``dataset.mnist`` as fastnn's modules in
    ``sys.modules`` (replacing any book modules already imported). Returns the alias names."""
    common = types.ModuleType("common", "The book's common/ package, served by fastnn.")
    common.__path__ = []          # only the aliased submodules exist
    common.__fastnn_alias__ = True
    saved = {}
    saved["common"] = sys.modules.get("common")
    sys.modules["common"] = common
    for name, target in ALIASES.items():
        saved[name] = sys.modules.get(name)
        mod = importlib.import_module(target)
        sys.modules[name] = mod
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, mod)
    if not _installed:
        _installed.update(saved)
    return ["common"] + list(ALIASES)


def uninstall():
    """Undo :func:`install` (restores whatever the names referred to before)."""
    for name, mod in _installed.items():
        if mod is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = mod
    _installed.clear()


def run(script, args=()):
    """Run ``script`` as ``__main__`` with fastnn serving the book's packages."""
    script = os.path.abspath(script)
    if not os.path.isfile(script):
        raise FileNotFoundError("no such script: %s" % script)
    install()
    old_argv, old_path0 = sys.argv, list(sys.path)
    sys.argv = [script] + list(args)
    sys.path.insert(0, os.path.dirname(script))
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv = old_argv
        sys.path[:] = old_path0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().split("\n\n")[0] + "\n\nusage: python -m fastnn.book SCRIPT.py "
              "[args ...]")
        return 0 if argv else 2
    try:
        run(argv[0], argv[1:])
    except FileNotFoundError as e:
        if not os.path.isfile(os.path.abspath(argv[0])):
            print("fastnn.book: %s" % e, file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
