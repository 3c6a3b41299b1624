"""The demo: synthetic data -> prepare -> pre-training -> adaptation with several methods -> report.

:data:`METHODS` lives here, light, so ``adaptcli demo --help`` names them without importing the pipeline.
"""

#: The methods the demo adapts with, in the order of its table (``lora+pace``: LoRA trained with PACE).
METHODS = ("linear", "attentive_probe", "vpt_deep", "adaptformer", "arc", "lora", "lora+pace", "ssf", "adapter_plus",
           "full")
