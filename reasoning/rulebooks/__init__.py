"""Rule books shipped with AXR (`pipeline.rules: surveillance`, `axr detect --rules surveillance`)."""
