//! Function URL configurations and the url-id lookup of the URL request path.

use super::*;

/// A Function URL configuration with the function it belongs to.
#[derive(Debug, Clone)]
pub struct UrlView {
    pub function_name: String,
    /// The alias the URL points at; `None` for the unqualified function (`$LATEST`).
    pub qualifier: Option<String>,
    /// The function ARN, qualified with the alias when there is one.
    pub function_arn: String,
    pub config: UrlConfig,
}

/// Everything a request to a Function URL needs, resolved from memory.
#[derive(Debug, Clone)]
pub struct UrlTarget {
    pub account_id: String,
    pub function_name: String,
    pub qualifier: Option<String>,
    pub function_arn: String,
    pub config: UrlConfig,
    /// The statements that govern the URL: the function's own policy and the alias's.
    pub policy: Policy,
}

impl ControlPlane {
    /// The qualifier key of a URL operation: `""` or an existing alias's name.
    pub(super) fn url_key(r: &FunctionRef, param: Option<&str>) -> Result<String> {
        match Self::qualifier(r, param)? {
            None => Ok(String::new()),
            Some(q) => {
                crate::url::validate_qualifier(&q)?;
                Ok(q)
            }
        }
    }

    pub(super) fn check_alias_exists(
        &self,
        account_id: &str,
        entry: &Entry,
        q: &str,
    ) -> Result<()> {
        if q.is_empty() || entry.aliases.contains_key(q) {
            Ok(())
        } else {
            Err(self.not_found(account_id, &entry.latest.name, Some(q)))
        }
    }

    pub(super) fn url_view(
        &self,
        account_id: &str,
        name: &str,
        q: &str,
        config: &UrlConfig,
    ) -> UrlView {
        UrlView {
            function_name: name.to_string(),
            qualifier: (!q.is_empty()).then(|| q.to_string()),
            function_arn: self.qualified_arn(account_id, name, q),
            config: config.clone(),
        }
    }

    /// `CreateFunctionUrlConfig`.
    pub fn create_url_config(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        input: UrlInput,
    ) -> Result<UrlView> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::url_key(&r, qualifier)?;
        let auth_type = match &input.auth_type {
            Some(a) => UrlAuthType::parse(a, "authType")?,
            None => {
                return Err(ControlError::validation(
                    "1 validation error detected: Value null at 'authType' failed to satisfy constraint: Member must not be null",
                ));
            }
        };
        if let Some(c) = &input.cors {
            crate::url::validate_cors(c)?;
        }
        let invoke_mode = match &input.invoke_mode {
            Some(m) => InvokeMode::parse(m)?,
            None => InvokeMode::Buffered,
        };
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        self.check_alias_exists(account_id, entry, &q)?;
        if entry.urls.contains_key(&q) {
            return Err(ControlError::conflict(format!(
                "Failed to create function url config for [functionArn = {}]. Error message:  FunctionUrlConfig exists for this Lambda function",
                self.qualified_arn(account_id, &r.name, &q)
            )));
        }
        let mut url_id = crate::url::new_url_id();
        while state.url_index.contains_key(&url_id) {
            url_id = crate::url::new_url_id();
        }
        let now = crate::url::now_url_time();
        let config = UrlConfig {
            url_id,
            auth_type,
            cors: input.cors,
            invoke_mode,
            creation_time: now.clone(),
            last_modified_time: now,
        };
        let mut entry = entry.clone();
        entry.urls.insert(q.clone(), config.clone());
        self.persist(&[Self::put_function_op(&key, &entry)?])?;
        state.insert(key, entry);
        Ok(self.url_view(account_id, &r.name, &q, &config))
    }

    /// `GetFunctionUrlConfig`.
    pub fn get_url_config(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<UrlView> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::url_key(&r, qualifier)?;
        let state = self.read();
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let config = entry
            .urls
            .get(&q)
            .ok_or_else(|| ControlError::not_found(NO_SUCH_RESOURCE))?;
        Ok(self.url_view(account_id, &r.name, &q, config))
    }

    /// `UpdateFunctionUrlConfig`: only the given fields change.
    pub fn update_url_config(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        input: UrlInput,
    ) -> Result<UrlView> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::url_key(&r, qualifier)?;
        let auth_type = input
            .auth_type
            .as_deref()
            .map(|a| UrlAuthType::parse(a, "authType"))
            .transpose()?;
        if let Some(c) = &input.cors {
            crate::url::validate_cors(c)?;
        }
        let invoke_mode = input
            .invoke_mode
            .as_deref()
            .map(InvokeMode::parse)
            .transpose()?;
        let config = self.change_doc(account_id, &r.name, |entry| {
            let config = entry
                .urls
                .get_mut(&q)
                .ok_or_else(|| ControlError::not_found(NO_SUCH_RESOURCE))?;
            if let Some(a) = auth_type {
                config.auth_type = a;
            }
            if let Some(c) = input.cors {
                config.cors = Some(c);
            }
            if let Some(m) = invoke_mode {
                config.invoke_mode = m;
            }
            config.last_modified_time = crate::url::now_url_time();
            Ok(config.clone())
        })?;
        Ok(self.url_view(account_id, &r.name, &q, &config))
    }

    /// `DeleteFunctionUrlConfig`.
    pub fn delete_url_config(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::url_key(&r, qualifier)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        if !entry.urls.contains_key(&q) {
            return Err(ControlError::not_found(NO_SUCH_RESOURCE));
        }
        let mut entry = entry.clone();
        entry.urls.remove(&q);
        self.persist(&[Self::put_function_op(&key, &entry)?])?;
        state.insert(key, entry);
        Ok(())
    }

    /// `ListFunctionUrlConfigs` (at most 50 a page).
    pub fn list_url_configs(
        &self,
        account_id: &str,
        function_name: &str,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<UrlView>> {
        max_items_at_most(max_items, 50)?;
        let r = self.parse(account_id, function_name)?;
        let state = self.read();
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let items: Vec<(String, UrlView)> = entry
            .urls
            .iter()
            .map(|(q, c)| (q.clone(), self.url_view(account_id, &r.name, q, c)))
            .collect();
        drop(state);
        paginate(items, marker, max_items)
    }

    /// Finds the function behind a url-id (memory only; the URL request path).
    pub fn resolve_url(&self, url_id: &str) -> Option<UrlTarget> {
        let state = self.read();
        let (key, q) = state.url_index.get(url_id)?.clone();
        let entry = state.get(&key)?;
        let config = entry.urls.get(&q)?.clone();
        let mut policy = entry.policies.get("").cloned().unwrap_or_default();
        if !q.is_empty()
            && let Some(p) = entry.policies.get(&q)
        {
            policy.statements.extend(p.statements.iter().cloned());
        }
        Some(UrlTarget {
            account_id: key.account_id.clone(),
            function_name: key.name.clone(),
            qualifier: (!q.is_empty()).then(|| q.clone()),
            function_arn: self.qualified_arn(&key.account_id, &key.name, &q),
            config,
            policy,
        })
    }
}
