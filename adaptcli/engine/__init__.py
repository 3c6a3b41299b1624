"""The training and evaluation engine on Hugging Face Accelerate."""
