# Every quantitative claim of the paper tested on the result tables the config names
# (target `claims`): results/claims.csv and claims.md.
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
