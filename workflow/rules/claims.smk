# Every quantitative claim of the paper tested on the result tables the config names
# (target `claims`): results/claims.csv and claims.md; the results page of the whole run
# (target `summary`): results/summary.md.
from ldnn.claims import sources as claim_sources, tables as claim_tables

CLAIM_SOURCES = claim_sources(config)
CLAIM_TABLES = claim_tables(CLAIM_SOURCES)


rule claims:
    input:
        tables=[f"{R}/{table}" for table in CLAIM_TABLES],
    output:
        table=report(f"{R}/claims.csv", caption="../report/claims.rst", category="Claims"),
        markdown=f"{R}/claims.md",
    params:
        names=CLAIM_TABLES,
        sources=CLAIM_SOURCES,
        settings=config["claims"],
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/claims.log",
    script:
        "../scripts/claims.py"


rule summary:
    input:
        studies=[f"{R}/{study}/results.csv" for study in STUDIES],
        hessian=rules.hessian.output.table,
        claims=rules.claims.output.table,
        markers=pendulum_markers if PENDULUM["source"] == "synthetic" else [],
        truth=rules.clock_video.output.truth if PENDULUM["source"] == "synthetic" else [],
    output:
        report(f"{R}/summary.md", caption="../report/summary.rst", category="Results"),
    params:
        names=list(STUDIES),
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/summary.log",
    script:
        "../scripts/summary.py"
