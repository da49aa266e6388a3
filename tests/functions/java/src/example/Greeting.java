package example;

import java.util.List;

/** A POJO output. */
public class Greeting {
    private final String message;
    private final int nextAge;
    private final List<String> tags;
    private final boolean member;

    public Greeting(String message, int nextAge, List<String> tags, boolean member) {
        this.message = message;
        this.nextAge = nextAge;
        this.tags = tags;
        this.member = member;
    }

    public String getMessage() { return message; }
    public int getNextAge() { return nextAge; }
    public List<String> getTags() { return tags; }
    public boolean isMember() { return member; }
}
