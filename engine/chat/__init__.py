"""Chat with the one resident model: loading and switching adapters (models), streaming replies within
their limits (generation), sampling presets (sampling), chat templates and stop tokens (templates),
and chats saved as JSON (history)."""
