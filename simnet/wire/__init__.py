"""Messages and their bytes: the message type, payload codecs, the safetensors
reader/writer."""
