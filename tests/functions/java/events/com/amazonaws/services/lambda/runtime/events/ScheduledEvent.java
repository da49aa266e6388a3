package com.amazonaws.services.lambda.runtime.events;

import java.time.Instant;
import java.util.List;
import java.util.Map;

/** The shape of aws-lambda-java-events' ScheduledEvent (its time as java.time.Instant here). */
public class ScheduledEvent {
    private String id;
    private String detailType;
    private String source;
    private String account;
    private Instant time;
    private List<String> resources;
    private Map<String, Object> detail;

    public String getId() { return id; }
    public void setId(String id) { this.id = id; }
    public String getDetailType() { return detailType; }
    public void setDetailType(String detailType) { this.detailType = detailType; }
    public String getSource() { return source; }
    public void setSource(String source) { this.source = source; }
    public String getAccount() { return account; }
    public void setAccount(String account) { this.account = account; }
    public Instant getTime() { return time; }
    public void setTime(Instant time) { this.time = time; }
    public List<String> getResources() { return resources; }
    public void setResources(List<String> resources) { this.resources = resources; }
    public Map<String, Object> getDetail() { return detail; }
    public void setDetail(Map<String, Object> detail) { this.detail = detail; }
}
