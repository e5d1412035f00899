"""LUMINA, the method the harness was built around (docs/lumina.md): gradient signatures (`signatures`), the
incremental signature store (`database`), scoring and shares (`scoring`, `stats`), the one-file attribution report
(`attribution`), the ablation check (`causal`), and the method that writes score matrices (`method`)."""
