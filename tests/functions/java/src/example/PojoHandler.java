package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;

/** A POJO in and a POJO out. */
public class PojoHandler implements RequestHandler<Person, Greeting> {
    @Override
    public Greeting handleRequest(Person p, Context context) {
        int total = 0;
        if (p.getScores() != null) {
            for (int s : p.getScores().values()) {
                total += s;
            }
        }
        String city = p.getAddress() == null ? "nowhere" : p.getAddress().getCity();
        return new Greeting(p.getName() + " (" + p.getHeight() + " m) from " + city + " scored " + total,
                p.getAge() + 1, p.getTags(), !p.isMember());
    }
}
