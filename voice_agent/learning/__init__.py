"""Learned offer ranking and no-show risk, trained on the clinic's own history (issue 16).

`features` turns an offer or an appointment into a feature dict; `decisions` records what
patients were shown and what they did; `training` fits and measures models; `models` keeps them
in the database; `ranker` scores offers with the promoted model (the rules otherwise); `noshow`
estimates each appointment's no-show probability; `jobs` settles open decisions and retrains.
"""
