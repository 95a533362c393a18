-- Outcomes: each referral keeps the step times its state does not (its first acceptance, its
-- first contact attempt or connection) and which escalations were raised for it, written by the
-- transaction that records the event or escalation, so counting a year of referrals reads one
-- row per referral and no events. `escalated` holds one bit per timer and tier: bit
-- (2 × timer + tier) with timers in the order deliver_by, respond_by, connect_by, confirm_by and
-- tiers responsible (0), coordinator (1).
ALTER TABLE referrals ADD COLUMN accepted_at INTEGER;
ALTER TABLE referrals ADD COLUMN first_contact_at INTEGER;
ALTER TABLE referrals ADD COLUMN escalated INTEGER NOT NULL DEFAULT 0;

-- A database made before this migration gets the same values from its events and escalations.
UPDATE referrals SET
    accepted_at = (SELECT MIN(e.occurred_at) FROM referral_events e
                   WHERE e.referral_id = referrals.referral_id AND e.action = 'accept'),
    first_contact_at = (SELECT MIN(e.occurred_at) FROM referral_events e
                        WHERE e.referral_id = referrals.referral_id
                        AND e.action IN ('record_contact_attempt', 'report_connected')),
    escalated = COALESCE((SELECT SUM(
                    (CASE x.timer WHEN 'deliver_by' THEN 1 WHEN 'respond_by' THEN 4
                     WHEN 'connect_by' THEN 16 WHEN 'confirm_by' THEN 64 ELSE 0 END)
                    * (CASE x.tier WHEN 'coordinator' THEN 2 ELSE 1 END))
                FROM escalations x WHERE x.referral_id = referrals.referral_id), 0);

-- The referrals a `referred_elsewhere` report links to, found without reading every referral.
CREATE INDEX referrals_referred_elsewhere ON referrals (not_connected_reason, linked_referral_id);
