"""The subcommands, one module each: arguments -> Config -> the catalog, opened once inside the
command's one event loop -> the work. `cli.py` builds the parser and turns whatever ends a
command into one line and an exit code.

    run.py      archive the selected tasks (`bookkeeping` accounts for the run, `pipeline` does it)
    list.py     what a run would do (also `run --dry-run`)
    verify.py   re-check every archived file; --repair archives damaged tasks again
    status.py   what the archive holds, from the catalog alone
    gallery.py  write the offline gallery (and refresh it after `run` and `verify --repair`)
    common.py   what they share: the config, the selection of tasks, checks made before any work
"""
