-- Outcomes: a coordinator's figures read every referral of its municipality sent in a date
-- range, and for each the time of its acceptance and of its first contact from its events.
CREATE INDEX referrals_by_municipality_sent ON referrals (municipality, sent_at);
CREATE INDEX referrals_from_sent ON referrals (from_agency, sent_at);
CREATE INDEX referrals_to_sent ON referrals (to_agency, sent_at);
CREATE INDEX referral_events_by_action ON referral_events (referral_id, action, occurred_at);
