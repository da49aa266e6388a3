//! Resource-based policies: `AddPermission`, `RemovePermission`, `GetPolicy`.

use super::*;

impl ControlPlane {
    /// The qualifier key of a policy operation: `""`, an existing version or an existing alias.
    pub(super) fn policy_key(
        &self,
        account_id: &str,
        entry: &Entry,
        q: Option<&str>,
    ) -> Result<String> {
        match q {
            None => Ok(String::new()),
            Some("$LATEST") => Err(ControlError::invalid(
                "We currently do not support adding policies for $LATEST.",
            )),
            Some(q) => {
                let exists = match parse_version_number(q) {
                    Some(n) => entry.versions.contains_key(&n),
                    None => entry.aliases.contains_key(q),
                };
                if exists {
                    Ok(q.to_string())
                } else {
                    Err(self.not_found(account_id, &entry.latest.name, Some(q)))
                }
            }
        }
    }

    /// `AddPermission`: returns the added statement.
    pub fn add_permission(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        input: PermissionInput,
    ) -> Result<Statement> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        self.change_doc(account_id, &r.name, |entry| {
            let pk = self.policy_key(account_id, entry, q.as_deref())?;
            let resource = self.qualified_arn(account_id, &r.name, &pk);
            let statement = crate::policy::build_statement(&input, &resource)?;
            let latest_revision = &entry.latest.revision_id;
            let policy = entry.policies.entry(pk).or_default();
            // RevisionId may be the policy's (from GetPolicy) or the function's (from GetFunction).
            if let Some(want) = &input.revision_id
                && *want != policy.revision_id
                && want != latest_revision
            {
                return Err(ControlError::precondition(
                    "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id",
                ));
            }
            if policy.statements.iter().any(|s| s.sid == statement.sid) {
                return Err(ControlError::conflict(format!(
                    "The statement id ({}) provided already exists. Please provide a new statement id, or remove the existing statement.",
                    statement.sid
                )));
            }
            policy.statements.push(statement.clone());
            crate::policy::check_length(policy, input.policy_size)?;
            policy.revision_id = new_revision();
            Ok(statement)
        })
    }

    /// `RemovePermission`.
    pub fn remove_permission(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        statement_id: &str,
        revision_id: Option<&str>,
    ) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        self.change_doc(account_id, &r.name, |entry| {
            let pk = self.policy_key(account_id, entry, q.as_deref())?;
            let latest_revision = &entry.latest.revision_id;
            let policy = entry.policies.get_mut(&pk).ok_or_else(|| {
                ControlError::not_found("No policy is associated with the given resource.")
            })?;
            if let Some(want) = revision_id
                && want != policy.revision_id
                && want != latest_revision
            {
                return Err(ControlError::precondition(
                    "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id",
                ));
            }
            let before = policy.statements.len();
            policy.statements.retain(|s| s.sid != statement_id);
            if policy.statements.len() == before {
                return Err(ControlError::not_found(format!(
                    "Statement {statement_id} is not found in resource policy."
                )));
            }
            if policy.statements.is_empty() {
                entry.policies.remove(&pk);
            } else {
                policy.revision_id = new_revision();
            }
            Ok(())
        })
    }

    /// `GetPolicy`: the policy of the function or of one version or alias.
    pub fn get_policy(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<Policy> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        let state = self.read();
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let pk = match q.as_deref() {
            Some("$LATEST") => String::new(),
            other => self.policy_key(account_id, entry, other)?,
        };
        entry
            .policies
            .get(&pk)
            .cloned()
            .ok_or_else(|| ControlError::not_found(NO_SUCH_RESOURCE))
    }
}
