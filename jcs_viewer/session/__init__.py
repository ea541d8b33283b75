"""The reader's work on an analysed study: editable labels with undo/redo, review
states, notes, and per-study session files that autosave (no Qt here)."""
