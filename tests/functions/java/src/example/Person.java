package example;

import java.util.List;
import java.util.Map;

/** A POJO input: setters, a list, a nested map, a boxed and a primitive number. */
public class Person {
    private String name;
    private int age;
    private Double height;
    private boolean member;
    private List<String> tags;
    private Map<String, Integer> scores;
    private Address address;

    public String getName() { return name; }
    public void setName(String name) { this.name = name; }
    public int getAge() { return age; }
    public void setAge(int age) { this.age = age; }
    public Double getHeight() { return height; }
    public void setHeight(Double height) { this.height = height; }
    public boolean isMember() { return member; }
    public void setMember(boolean member) { this.member = member; }
    public List<String> getTags() { return tags; }
    public void setTags(List<String> tags) { this.tags = tags; }
    public Map<String, Integer> getScores() { return scores; }
    public void setScores(Map<String, Integer> scores) { this.scores = scores; }
    public Address getAddress() { return address; }
    public void setAddress(Address address) { this.address = address; }

    /** A nested POJO bound through its fields alone (no setters). */
    public static class Address {
        private String city;
        private String zip;

        public String getCity() { return city; }
        public String getZip() { return zip; }
    }
}
