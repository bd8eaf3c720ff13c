"""Files in and out: run results (:mod:`~kanpde.io.results`), run directories
(:mod:`~kanpde.io.rundir`), field export for ParaView (:mod:`~kanpde.io.mesh_export`), point
files and predictions (:mod:`~kanpde.io.points`), stored reference solutions
(:mod:`~kanpde.io.reference_files`), figures (:mod:`~kanpde.io.plots`,
:mod:`~kanpde.io.compare_figure`) and comparison reports (:mod:`~kanpde.io.compare_report`,
:mod:`~kanpde.io.aggregate`, :mod:`~kanpde.io.curves`)."""
