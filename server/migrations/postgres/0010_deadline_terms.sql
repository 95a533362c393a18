-- How each deadline of a referral was counted (hours, business days, or given by the sender), so
-- that people see which calendar a deadline uses (営業日/時間) even after the policy changes.
-- Empty for referrals sent before business days existed: their deadlines were all in hours or
-- given by the sender, and which is no longer known.
ALTER TABLE referrals ADD COLUMN deadline_terms TEXT;
