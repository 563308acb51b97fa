# ldnn: learned-diversity neural networks, every result of Choudhary et al. (2023).
# Wiring only: configuration, its validation, the rules, the default target.
from ldnn.config import validate

configfile: "config.yaml"
validate(config, workflow.source_path("workflow/schemas/config.schema.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pendulum.smk"
include: "workflow/rules/metalearn.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/claims.smk"


rule all:
    default_target: True
    input:
        rules.fig3.output,
        rules.fig5.output,
        rules.fig6.output,
        rules.fig7.output,
        rules.fig4.output,
        rules.fig8.output,
        rules.fig9.output,
        rules.hessian.output,
        rules.claims.output,
        rules.summary.output,
        every_capture(),
