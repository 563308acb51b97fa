# Figures: each has a named target and reads only small tables; one file per training
# protocol of its study, results/figures/{protocol}/figN.png (fig9 has none).

FIG3 = config["figures"]["fig3"]
FIG5 = config["figures"]["fig5"]
FIG6 = config["figures"]["fig6"]
FIG7 = config["figures"]["fig7"]
FIG4 = config["figures"]["fig4"]
FIG8 = config["figures"]["fig8"]
FIG9 = config["figures"]["fig9"]


FIG6_PROTOCOLS = [p for p in protocols_of(FIG6["study"]) if p in protocols_of(FIG6["hnn_study"])]


rule fig3:
    input:
        history=f"{R}/{FIG3['study']}/metalearn/history.npz",
        results=f"{R}/{FIG3['study']}/results.csv",
    output:
        png=figure_report("fig3", protocols_of(FIG3["study"])),
        pdf=figure_files("fig3", protocols_of(FIG3["study"]), "pdf"),
    params:
        figure=FIG3,
        protocols=protocols_of(FIG3["study"]),
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/figures/fig3.log",
    script:
        "../scripts/fig3.py"


rule fig5:
    input:
        history=f"{R}/{FIG5['study']}/metalearn/history.npz",
        results=f"{R}/{FIG5['study']}/results.csv",
    output:
        png=figure_report("fig5", protocols_of(FIG5["study"])),
        pdf=figure_files("fig5", protocols_of(FIG5["study"]), "pdf"),
    params:
        figure=FIG5,
        protocols=protocols_of(FIG5["study"]),
        mu=config["data"]["van_der_pol"]["mu"],
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/figures/fig5.log",
    script:
        "../scripts/fig5.py"


rule fig6:
    input:
        nn_history=f"{R}/{FIG6['study']}/metalearn/history.npz",
        hnn_history=f"{R}/{FIG6['hnn_study']}/metalearn/history.npz",
        nn_results=f"{R}/{FIG6['study']}/results.csv",
        hnn_results=f"{R}/{FIG6['hnn_study']}/results.csv",
    output:
        png=figure_report("fig6", FIG6_PROTOCOLS),
        pdf=figure_files("fig6", FIG6_PROTOCOLS, "pdf"),
    params:
        figure=FIG6,
        protocols=FIG6_PROTOCOLS,
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/figures/fig6.log",
    script:
        "../scripts/fig6.py"


rule fig7:
    input:
        video=pendulum_video,
        markers=pendulum_markers,
        angles=rules.angles.output,
        results=f"{R}/{FIG7['study']}/results.csv",
    output:
        png=figure_report("fig7", protocols_of(FIG7["study"])),
        pdf=figure_files("fig7", protocols_of(FIG7["study"]), "pdf"),
    params:
        figure=FIG7,
        protocols=protocols_of(FIG7["study"]),
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/figures/fig7.log",
    script:
        "../scripts/fig7.py"


rule fig4:
    input:
        results=f"{R}/{FIG4['study']}/results.csv",
    output:
        png=figure_report("fig4", protocols_of(FIG4["study"])),
        pdf=figure_files("fig4", protocols_of(FIG4["study"]), "pdf"),
    params:
        figure=FIG4,
        protocols=protocols_of(FIG4["study"]),
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/figures/fig4.log",
    script:
        "../scripts/fig4.py"


rule fig8:
    input:
        results=f"{R}/{FIG8['study']}/results.csv",
    output:
        png=figure_report("fig8", protocols_of(FIG8["study"])),
        pdf=figure_files("fig8", protocols_of(FIG8["study"]), "pdf"),
    params:
        figure=FIG8,
        protocols=protocols_of(FIG8["study"]),
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/figures/fig8.log",
    script:
        "../scripts/fig8.py"


rule fig9:
    output:
        png=report(f"{R}/figures/fig9.png", caption="../report/fig9.rst", category="Figures"),
        pdf=f"{R}/figures/fig9.pdf",
    params:
        figure=FIG9,
    conda:
        "../../envs/ldnn.yaml"
    log:
        f"{R}/logs/figures/fig9.log",
    script:
        "../scripts/fig9.py"
