"""The sender that runs on the board (issue: edge sender)."""
