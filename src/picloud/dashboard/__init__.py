"""Static files of the operator dashboard (index.html, ES modules, styles), no build step."""
