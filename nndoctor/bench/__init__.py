"""``nndoctor bench``: the doctor's accuracy, measured on the corpus of ``nndoctor.faults``.

``runner`` runs each (case, seed) in a child interpreter and reads back its JSON report;
``score`` turns reports into verdicts (found with an accepted reason, first finding right,
false alarms) and the summary the README reports.
"""
