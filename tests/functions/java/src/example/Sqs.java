package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.events.SQSEvent;
import java.util.ArrayList;
import java.util.List;

/** Binds an SQS event to the event class the function bundles. */
public class Sqs implements RequestHandler<SQSEvent, List<String>> {
    @Override
    public List<String> handleRequest(SQSEvent event, Context context) {
        List<String> out = new ArrayList<>();
        for (SQSEvent.SQSMessage m : event.getRecords()) {
            out.add(m.getMessageId() + ":" + m.getBody() + ":" + m.getEventSourceArn() + ":"
                    + m.getAttributes().get("ApproximateReceiveCount"));
        }
        return out;
    }
}
