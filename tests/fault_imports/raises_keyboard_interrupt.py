"""Raises ``KeyboardInterrupt`` at import."""

raise KeyboardInterrupt("raises_keyboard_interrupt: KeyboardInterrupt at import")
