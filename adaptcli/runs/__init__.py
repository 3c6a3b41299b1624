"""Runs: the run folder (:mod:`.folder`), tensors in and out of models (:mod:`.tensors`), building a
run's model (:mod:`.build`), loading a finished run (:mod:`.load`) and counting its parameters
(:mod:`.params`). Engine, deploy and the CLI all stand on this layer."""
