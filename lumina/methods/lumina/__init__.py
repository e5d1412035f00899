"""LUMINA, the method the harness was built around (docs/lumina.md): gradient signatures (`signatures`), the
incremental signature store (`database`), scoring and shares (`scoring`, `stats`), the one-file attribution report
(`attribution`), the ablation check (`causal`, `ablation`), the method that writes score matrices (`method`), and
what other packages read of it (`checks`, the one module the ground truth imports).
"""
