# Transient models (invoicing from imported work) live here.
