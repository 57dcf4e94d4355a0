"""Export a trained run: the adapter, merged 16-bit or 4-bit weights, GGUF files with an Ollama
Modelfile, or a push to the Hugging Face Hub. Every export is loaded back and compared with the
in-app model (base + adapter) before it is called done (verify.py)."""
