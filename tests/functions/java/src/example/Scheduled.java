package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.events.ScheduledEvent;

/** Binds a scheduled EventBridge event: "detail-type" by name, "time" through Instant.parse. */
public class Scheduled implements RequestHandler<ScheduledEvent, String> {
    @Override
    public String handleRequest(ScheduledEvent e, Context context) {
        return e.getDetailType() + "|" + e.getSource() + "|" + e.getTime().getEpochSecond() + "|"
                + e.getResources() + "|" + e.getDetail();
    }
}
