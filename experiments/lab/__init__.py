"""What every study shares, on odeness's public API: studies as data (`catalogue`),
sweep folders (`sweep_runs`), adapted-run folders (`adapted_runs`), the ODE-ness report
(`ode_reports`), Markdown tables (`markdown`) and matplotlib figures (`figures`)."""
