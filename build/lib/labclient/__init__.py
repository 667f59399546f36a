"""The lab's client: a CLI with one subcommand per listener, and a demo that narrates them."""
