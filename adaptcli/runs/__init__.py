"""Runs: the run folder (:mod:`.folder`), tensors in and out of models (:mod:`.tensors`), building a
run's model (:mod:`.build`), loading a finished run (:mod:`.load`), counting its parameters
(:mod:`.params`), the :class:`~.session.Session` a command trains or evaluates in (:mod:`.session`),
checkpoints (:mod:`.checkpoint`), ``run.json`` as :class:`~.info.RunInfo` (:mod:`.info`), the run's
recorded state (:mod:`.record`) and its typed results (:mod:`.results`). Engine, deploy and the CLI all stand on this layer."""
